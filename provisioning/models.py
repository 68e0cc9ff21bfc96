# ProvisioningJob, JobStep and JobLogLine arrive with the provisioning issue (see README.md).
