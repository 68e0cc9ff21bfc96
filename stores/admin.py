# The Host admin lives in provisioning/admin.py: registering a host runs its engine check, which talks to
# Docker through provisioning (above stores).
