-- Inspection rules (API 1.96). Conditions and actions are JSON lists.

CREATE TABLE inspection_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    priority    INTEGER NOT NULL DEFAULT 0,
    description TEXT,
    scope       TEXT,
    sensitive   INTEGER NOT NULL DEFAULT 0,
    phase       TEXT,
    conditions  TEXT NOT NULL DEFAULT '[]',
    actions     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT
);

CREATE INDEX inspection_rules_phase ON inspection_rules (phase);
