-- A node's history (API 1.78) and the inventory its agent reported (1.81).

CREATE TABLE node_history (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                   TEXT NOT NULL UNIQUE,
    node_id                INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    created_at             TEXT NOT NULL,
    severity               TEXT NOT NULL,
    event_type             TEXT NOT NULL,
    event                  TEXT NOT NULL,
    conductor              TEXT,
    user                   TEXT,
    project                TEXT,
    state                  TEXT,
    target_provision_state TEXT,
    duration_seconds       INTEGER
);

CREATE INDEX node_history_node ON node_history (node_id, id);

CREATE TABLE node_inventory (
    node_id     INTEGER PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    inventory   TEXT NOT NULL,
    plugin_data TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
