DROP TABLE account_purges;
DROP TABLE accounts;
