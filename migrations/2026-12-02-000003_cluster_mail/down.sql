ALTER TABLE nodes DROP COLUMN sockets;
ALTER TABLE nodes DROP COLUMN sessions;
DROP TABLE cluster_mail;
DROP TABLE user_watchers;
