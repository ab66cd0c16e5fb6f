"""Security shared by master and agent: credentials and HTTP Basic authentication
(`authentication`), Mesos-format ACLs and the authorizer plug-in (`authorizer`).

Open by default, as in Mesos: nothing here runs unless the operator turns it on with the
flags Mesos operators know (`--credentials`, `--authenticate_*`, `--acls`).
"""
