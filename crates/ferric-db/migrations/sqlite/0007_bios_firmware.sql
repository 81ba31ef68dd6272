-- A node's BIOS settings (API 1.40, registry fields 1.74) and firmware
-- components (1.86), as its BIOS and firmware interfaces last read them.

CREATE TABLE bios_settings (
    node_id          INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    value            TEXT,
    attribute_type   TEXT,
    allowable_values TEXT,
    lower_bound      INTEGER,
    max_length       INTEGER,
    min_length       INTEGER,
    read_only        INTEGER,
    reset_required   INTEGER,
    "unique"         INTEGER,
    upper_bound      INTEGER,
    created_at       TEXT NOT NULL,
    updated_at       TEXT,
    PRIMARY KEY (node_id, name)
);

CREATE TABLE firmware_information (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id              INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    component            TEXT NOT NULL,
    initial_version      TEXT NOT NULL,
    current_version      TEXT,
    last_version_flashed TEXT,
    vendor               TEXT,
    model                TEXT,
    serial_number        TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT,
    UNIQUE (node_id, component)
);
