DROP TABLE token_revocations;
