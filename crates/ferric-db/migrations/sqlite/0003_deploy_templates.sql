-- Deploy templates (API 1.55): named lists of deploy steps, applied to a
-- deploy whose instance traits include the name.

CREATE TABLE deploy_templates (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL UNIQUE,
    extra      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE deploy_template_steps (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_template_id INTEGER NOT NULL REFERENCES deploy_templates (id) ON DELETE CASCADE,
    interface          TEXT NOT NULL,
    step               TEXT NOT NULL,
    args               TEXT NOT NULL,
    priority           INTEGER NOT NULL
);

CREATE INDEX deploy_template_steps_template ON deploy_template_steps (deploy_template_id, id);
