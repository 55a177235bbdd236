DROP TABLE completed_uploads;
