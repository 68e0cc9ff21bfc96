# BackupRun, RestoreRun and schedules arrive with the backups issue (see README.md).
