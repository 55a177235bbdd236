DROP TABLE approvals;
DROP TABLE usage_records;
DROP TABLE events;
DROP TABLE runs;
DROP TABLE threads;
