-- Converge metadata on SQLite: the named-query table.
--
-- Orleans' ADO.NET providers read their SQL from this table at start-up (QueryKey -> QueryText)
-- and bind parameters by name. Applied at every silo start inside one BEGIN IMMEDIATE transaction,
-- so it must stay idempotent: CREATE ... IF NOT EXISTS and upserts only, never DROP.
CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  TEXT NOT NULL PRIMARY KEY,
    QueryText TEXT NOT NULL
);
