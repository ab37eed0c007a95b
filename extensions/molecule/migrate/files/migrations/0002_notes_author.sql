-- dbfleet:no-transaction
-- Built without blocking writes: CREATE INDEX CONCURRENTLY cannot run in a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_author ON notes (author);
