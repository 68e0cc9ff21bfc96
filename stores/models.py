# Store, StoreEvent and Host arrive with the provisioning issue (see README.md).
