"""The agent's flag declarations (`FLAGS`): name, default, help and type of each flag, once.

Only the table, with the standard library and `mezzo.core.flags` behind it, so that the CLI can
build `mezzo agent`'s options and `--help` without importing the agent (psutil, the
containerizer, the resources library). `mezzo.agent.flags` parses the values (`AgentFlags`) and
re-exports `FLAGS`.
"""

from __future__ import annotations

from mezzo.core.daemon_logging import LOGGING_LEVEL
from mezzo.core.flags import BOOL, BYTES, DURATION, FLOAT, INT, JSON_OBJECT, WORDS, Flag, FlagSet
from mezzo.security.tls_flags import TLS_FLAGS

# `mezzo.resources.DEFAULT_ROLE`, spelled here so that the table imports no resources library;
# tests/test_agent_flags.py keeps them equal.
DEFAULT_ROLE = "*"

# `mezzo agent --help`'s summary (click's page and `mezzo.cli.flag_help`'s, one text).
COMMAND_HELP = "Run a mezzo agent (runs executors, speaks the v1 executor API)."

FLAGS = FlagSet([
    Flag("master", None, "leading master: host:port or zk://host:port,.../path (required)"),
    Flag("work_dir", None, "sandboxes and checkpoints (required)"),
    Flag("ip", None, "address to bind (default: all interfaces)"),
    Flag("advertise_ip", None, "address published to executors and the master"),
    Flag("port", "5051", "port to bind; 0 picks a free one", INT, minimum=0),
    Flag("hostname", None, "hostname published in offers (default: this host's name)"),
    Flag("resources", None, "Mesos text (cpus:4;mem:1024), JSON array, or file://path"),
    Flag("attributes", None, "rack:r1;zone:a;keys:[1-10];level:10"),
    Flag("default_role", DEFAULT_ROLE, "role of resources given without one"),
    Flag("isolation", None, "isolators, e.g. cgroups/cpu,cgroups/mem,cgroups/pids or auto"),
    Flag("cgroups_root", "mezzo", "cgroup under which containers are created"),
    Flag("recover", "reconnect",
         "reconnect: re-attach to old executors; cleanup: kill them, exit"),
    Flag("recovery_timeout", "15mins", "how long checkpointing executors wait for the agent",
         DURATION),
    Flag("executor_registration_timeout", "1mins", "time an executor has to subscribe", DURATION),
    Flag("executor_shutdown_grace_period", "5secs", "SHUTDOWN to destroy", DURATION),
    Flag("executor_reregistration_timeout", "2secs", "time old executors have to re-subscribe",
         DURATION),
    Flag("registration_backoff_factor", "1secs", "initial (re-)registration backoff", DURATION),
    Flag("switch_user", "true", "run tasks as their framework's / command's user", BOOL),
    Flag("http_command_executor", "false", "value of MESOS_HTTP_COMMAND_EXECUTOR", BOOL),
    Flag("executor_environment_variables", None,
         "JSON object (or file:///path of one) replacing the inherited env", JSON_OBJECT),
    Flag("status_update_retry_interval", "10secs", "first status update resend interval",
         DURATION),
    Flag("credential", None, "file with this agent's credential (Mesos JSON or 'principal secret')"),
    Flag("http_credentials", None,
         "credentials file for this agent's HTTP endpoints (Mesos JSON or 'principal secret')"),
    Flag("authenticate_http_readonly", "false",
         "require authentication on read-only endpoints (/state, /files/*, ...)", BOOL),
    Flag("authenticate_http_readwrite", "false",
         "require authentication on read-write endpoints (the operator API /api/v1)", BOOL),
    Flag("authenticate_http_executors", "false",
         "executors must send the token this agent minted for them (needs --jwt_secret_key)",
         BOOL),
    Flag("jwt_secret_key", None, "file with the key executor tokens are signed with (HS256)"),
    Flag("executor_secret_key", None, "deprecated alias of --jwt_secret_key"),
    Flag("acls", None, "ACLs in Mesos's JSON format, inline or a file path"),
    Flag("authorizer", "local", "authorizer: local (over --acls) or package.module:Class"),
    *TLS_FLAGS,
    Flag("logging_level", "INFO",
         "log messages at or above this level: INFO, WARNING, ERROR (or DEBUG)", LOGGING_LEVEL),
    Flag("log_dir", None,
         "also write the log to <log_dir>/mezzo-agent.INFO (served as /slave/log)"),
    Flag("command_executor", None, "argv (shell words) of the command executor (testing)", WORDS),
    Flag("container_logger", None,
         "org_apache_mesos_LogrotateContainerLogger: rotated stdout/stderr (default: plain files)"),
    Flag("max_stdout_size", "10MB", "logrotate logger: size at which stdout is rotated"),
    Flag("logrotate_stdout_options", None,
         "logrotate logger: 'rotate N' = rotated stdout files kept (default 0)"),
    Flag("max_stderr_size", "10MB", "logrotate logger: size at which stderr is rotated"),
    Flag("logrotate_stderr_options", None,
         "logrotate logger: 'rotate N' = rotated stderr files kept (default 0)"),
    Flag("gc_delay", "1weeks", "how long finished executors' sandboxes are kept", DURATION,
         minimum=0),
    Flag("disk_watch_interval", "1mins", "how often disk usage is checked (gc sooner as it fills)",
         DURATION),
    Flag("gc_disk_headroom", "0.1", "gc sooner as the disk fills, keeping this fraction free",
         FLOAT, minimum=0),
    Flag("fetcher_cache_dir", None,
         "parent directory of the fetcher cache (default: <work_dir>/fetch)"),
    Flag("fetcher_cache_size", "2GB", "size of the fetcher cache (0: no caching)", BYTES),
    Flag("http_heartbeat_interval", "30secs",
         "interval of the HEARTBEAT records on the agent's streaming responses (attach, sessions)",
         DURATION),
    Flag("container_ports_watch_interval", "30secs",
         "network/ports isolator: how often listening sockets are checked", DURATION),
    Flag("check_agent_port_range_only", "false",
         "network/ports isolator: only ports in the agent's `ports` resource are checked", BOOL),
    Flag("enforce_container_ports", "false",
         "network/ports isolator: kill a container listening on ports it was not given "
         "(otherwise only logged)", BOOL),
    Flag("container_ports_isolated_range", None,
         "network/ports isolator: only ports in this range are checked, e.g. [0-1023]"),
])
