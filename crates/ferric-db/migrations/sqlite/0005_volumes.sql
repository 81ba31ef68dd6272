-- Volume connectors and targets (API 1.32). A node's are deleted with it.

CREATE TABLE volume_connectors (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    node_id      INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    extra        TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT,
    UNIQUE (type, connector_id)
);

CREATE INDEX volume_connectors_node ON volume_connectors (node_id);

CREATE TABLE volume_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    node_id     INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    volume_type TEXT NOT NULL,
    volume_id   TEXT NOT NULL,
    boot_index  INTEGER NOT NULL,
    properties  TEXT NOT NULL DEFAULT '{}',
    extra       TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT,
    UNIQUE (node_id, boot_index)
);

CREATE INDEX volume_targets_node ON volume_targets (node_id);
