-- dbfleet:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS notes_author;
