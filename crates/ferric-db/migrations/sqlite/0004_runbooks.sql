-- Runbooks (API 1.92; traits 1.112): named lists of clean or service
-- steps a node may run when it carries one of the runbook's traits.

CREATE TABLE runbooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT,
    public          INTEGER NOT NULL DEFAULT 0,
    owner           TEXT,
    disable_ramdisk INTEGER NOT NULL DEFAULT 0,
    extra           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT
);

CREATE TABLE runbook_steps (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    runbook_id INTEGER NOT NULL REFERENCES runbooks (id) ON DELETE CASCADE,
    interface  TEXT NOT NULL,
    step       TEXT NOT NULL,
    args       TEXT NOT NULL,
    "order"    INTEGER NOT NULL
);

CREATE INDEX runbook_steps_runbook ON runbook_steps (runbook_id, id);

CREATE TABLE runbook_traits (
    runbook_id INTEGER NOT NULL REFERENCES runbooks (id) ON DELETE CASCADE,
    trait      TEXT NOT NULL,
    PRIMARY KEY (runbook_id, trait)
);

CREATE INDEX runbook_traits_trait ON runbook_traits (trait);
