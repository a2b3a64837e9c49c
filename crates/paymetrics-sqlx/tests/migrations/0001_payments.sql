-- The schema of the `query!` test app (tests/macros.rs).
CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL
);
