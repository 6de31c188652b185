-- Converge metadata on PostgreSQL: the named-query table.
--
-- Orleans' ADO.NET providers read their SQL from this table at start-up (QueryKey -> QueryText)
-- and bind parameters by name. The clustering provider loads every row and insists on its own
-- keys being present; the storage provider loads only its keys. Applied at every silo start in one
-- transaction holding an advisory lock, so concurrent silos apply it one after another; it must stay
-- idempotent: CREATE ... IF NOT EXISTS, CREATE OR REPLACE and upserts only, never DROP.
CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  varchar(64) NOT NULL,
    QueryText text        NOT NULL,
    CONSTRAINT PK_OrleansQuery PRIMARY KEY (QueryKey)
);
