ALTER TABLE nodes DROP COLUMN address;
DROP TABLE user_leases;
