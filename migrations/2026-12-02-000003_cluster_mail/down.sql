DROP TABLE cluster_mail;
DROP TABLE user_watchers;
