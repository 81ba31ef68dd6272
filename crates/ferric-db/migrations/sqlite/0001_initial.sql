-- Ferric's first schema. Timestamps are RFC 3339 text in UTC; free-form
-- dictionaries are JSON text; booleans are 0/1.

CREATE TABLE chassis (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    description TEXT,
    extra       TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT
);

CREATE TABLE nodes (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                   TEXT NOT NULL UNIQUE,
    name                   TEXT UNIQUE,
    description            TEXT,
    driver                 TEXT NOT NULL,
    bios_interface         TEXT NOT NULL,
    boot_interface         TEXT NOT NULL,
    console_interface      TEXT NOT NULL,
    deploy_interface       TEXT NOT NULL,
    firmware_interface     TEXT NOT NULL,
    inspect_interface      TEXT NOT NULL,
    management_interface   TEXT NOT NULL,
    network_interface      TEXT NOT NULL,
    power_interface        TEXT NOT NULL,
    raid_interface         TEXT NOT NULL,
    rescue_interface       TEXT NOT NULL,
    storage_interface      TEXT NOT NULL,
    vendor_interface       TEXT NOT NULL,
    driver_info            TEXT NOT NULL DEFAULT '{}',
    driver_internal_info   TEXT NOT NULL DEFAULT '{}',
    properties             TEXT NOT NULL DEFAULT '{}',
    instance_info          TEXT NOT NULL DEFAULT '{}',
    instance_uuid          TEXT UNIQUE,
    instance_name          TEXT,
    extra                  TEXT NOT NULL DEFAULT '{}',
    chassis_id             INTEGER REFERENCES chassis (id),
    provision_state        TEXT NOT NULL,
    target_provision_state TEXT,
    provision_updated_at   TEXT,
    power_state            TEXT,
    target_power_state     TEXT,
    maintenance            INTEGER NOT NULL DEFAULT 0,
    maintenance_reason     TEXT,
    fault                  TEXT,
    last_error             TEXT,
    reservation            TEXT,
    conductor_group        TEXT NOT NULL DEFAULT '',
    resource_class         TEXT,
    owner                  TEXT,
    lessee                 TEXT,
    automated_clean        INTEGER,
    protected              INTEGER NOT NULL DEFAULT 0,
    protected_reason       TEXT,
    retired                INTEGER NOT NULL DEFAULT 0,
    retired_reason         TEXT,
    console_enabled        INTEGER NOT NULL DEFAULT 0,
    boot_mode              TEXT,
    secure_boot            INTEGER,
    clean_step             TEXT NOT NULL DEFAULT '{}',
    deploy_step            TEXT NOT NULL DEFAULT '{}',
    service_step           TEXT NOT NULL DEFAULT '{}',
    raid_config            TEXT NOT NULL DEFAULT '{}',
    target_raid_config     TEXT NOT NULL DEFAULT '{}',
    network_data           TEXT NOT NULL DEFAULT '{}',
    shard                  TEXT,
    parent_node            TEXT,
    allocation_uuid        TEXT,
    inspection_started_at  TEXT,
    inspection_finished_at TEXT,
    health                 TEXT,
    disable_power_off      INTEGER NOT NULL DEFAULT 0,
    created_at             TEXT NOT NULL,
    updated_at             TEXT
);

CREATE INDEX nodes_provision_state ON nodes (provision_state);
CREATE INDEX nodes_reservation ON nodes (reservation) WHERE reservation IS NOT NULL;
CREATE INDEX nodes_conductor_group ON nodes (conductor_group);

CREATE TABLE node_traits (
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    trait   TEXT NOT NULL,
    PRIMARY KEY (node_id, trait)
);

CREATE TABLE portgroups (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                       TEXT NOT NULL UNIQUE,
    name                       TEXT UNIQUE,
    node_id                    INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    address                    TEXT UNIQUE,
    extra                      TEXT NOT NULL DEFAULT '{}',
    internal_info              TEXT NOT NULL DEFAULT '{}',
    mode                       TEXT,
    properties                 TEXT NOT NULL DEFAULT '{}',
    standalone_ports_supported INTEGER NOT NULL DEFAULT 1,
    physical_network           TEXT,
    category                   TEXT,
    dynamic_portgroup          INTEGER NOT NULL DEFAULT 0,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT
);

CREATE INDEX portgroups_node ON portgroups (node_id);

CREATE TABLE ports (
    id                              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                            TEXT NOT NULL UNIQUE,
    address                         TEXT NOT NULL UNIQUE,
    node_id                         INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    portgroup_id                    INTEGER REFERENCES portgroups (id),
    name                            TEXT UNIQUE,
    description                     TEXT,
    extra                           TEXT NOT NULL DEFAULT '{}',
    internal_info                   TEXT NOT NULL DEFAULT '{}',
    local_link_connection           TEXT NOT NULL DEFAULT '{}',
    physical_network                TEXT,
    pxe_enabled                     INTEGER NOT NULL DEFAULT 1,
    is_smartnic                     INTEGER NOT NULL DEFAULT 0,
    vendor                          TEXT,
    category                        TEXT,
    available_for_dynamic_portgroup INTEGER NOT NULL DEFAULT 1,
    created_at                      TEXT NOT NULL,
    updated_at                      TEXT
);

CREATE INDEX ports_node ON ports (node_id);
CREATE INDEX ports_portgroup ON ports (portgroup_id) WHERE portgroup_id IS NOT NULL;

CREATE TABLE conductors (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname        TEXT NOT NULL UNIQUE,
    conductor_group TEXT NOT NULL DEFAULT '',
    drivers         TEXT NOT NULL DEFAULT '[]',
    online          INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT
);
