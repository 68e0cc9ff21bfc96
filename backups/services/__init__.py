"""Backups, restores, verification, retention and platform backups, one topic per module:

- `records`: the one writer of run statuses, the errors callers catch, snapshot tags;
- `stack_io`: reading and writing a store's database and volumes (dump, import, archives, staging);
- `backup`: the `backup` job kind and the requests for one (manual, scheduled, final);
- `restore`: the `restore` job kind and the restore request (also into a new store from a final backup);
- `restore_export`: what a database restore would take away (rows changed since the snapshot, in the tables
  `backups.app_tables` lists), found and exported by the `restore_export` job kind and by the restore itself;
- `pre_update`: an update's safety net (provisioning.safety): its pre-update backup, and the data put back;
- `verify`: the `verify` job kind (restore-checks a snapshot in throwaway containers) and its schedule;
- `retention`: scheduled backups and retention (`restic forget --prune`, old restore exports removed);
- `reconcile`: keeping the BackupRun records matching the repository;
- `download`: the `download` job kind (a snapshot packed as .sql.gz and .tar.gz) and its signed links;
- `store_import`: chunked uploads and the `import` job kind (checked, backed up first, undone on failure);
- `transfers`: the periodic removal of expired downloads and abandoned uploads;
- `system`: the platform's own backups (database, configuration, code), which are not store operations.

Store backups, restores and verifications are kinds of the job engine (provisioning.kinds), registered in
`backups.kinds`; their BackupRun and RestoreRun rows are the domain records, each linked to its job.
"""
