"""The master's flag declarations (`FLAGS`): name, default, help and type of each flag, once.

Only the table, with the standard library and `mezzo.core.flags` behind it, so that the CLI can
build `mezzo master`'s options and `--help` without importing the master (aiohttp, the
allocator, the wire types). Parsing into typed values and the rules that span flags are in
`mezzo.master.flags` (`MasterFlags.parse`), which re-exports `FLAGS`.
"""

from __future__ import annotations

from mezzo.core.daemon_logging import LOGGING_LEVEL
from mezzo.core.flags import BOOL, DURATION, INT, Flag, FlagSet
from mezzo.security.tls_flags import TLS_FLAGS


def parse_forked_documents(text: str) -> str:
    """`--forked_documents`: auto, always or never."""
    if text not in ("auto", "always", "never"):
        raise ValueError(f"must be auto, always or never, got '{text}'")
    return text


# The allocator's defaults (`mezzo.master.allocator`), spelled here so that the table needs no
# import of the allocator; tests/test_master_flags.py keeps them equal.
DEFAULT_ALLOCATOR = "hierarchical"
DEFAULT_MIN_ALLOCATABLE = "cpus:0.01|mem:32"

# Authentication and authorization (`mezzo.master.auth` reads them).
AUTH_FLAGS = [
    Flag("credentials", None,
         "Credentials file: Mesos JSON {\"credentials\": [...]} or 'principal secret' lines"),
    Flag("authenticate_frameworks", "false", "Only authenticated frameworks may register", BOOL),
    Flag("authenticate", None, "Alias of --authenticate_frameworks", BOOL),
    Flag("authenticate_http_frameworks", "false",
         "Require HTTP Basic authentication on /api/v1/scheduler", BOOL),
    Flag("authenticate_agents", "false", "Only authenticated agents may register", BOOL),
    Flag("authenticate_slaves", None, "Alias of --authenticate_agents", BOOL),
    Flag("authenticate_http_readonly", "false", "Require authentication on read-only endpoints", BOOL),
    Flag("authenticate_http_readwrite", "false",
         "Require authentication on read-write endpoints (the operator API)", BOOL),
    Flag("acls", None, "ACLs in Mesos's JSON format, inline or a file path (file:///path or /path)"),
    Flag("rate_limits", None,
         "Framework rate limits, Mesos's JSON ({\"limits\": [{\"principal\": ..., \"qps\": ..., "
         "\"capacity\": ...}], \"aggregate_default_qps\": ...}), inline or a file path"),
    Flag("authorizers", "local", "Authorizer: local (over --acls) or a package.module:Class path"),
]

# `mezzo master --help`'s summary (click's page and `mezzo.cli.flag_help`'s, one text).
COMMAND_HELP = "Run a mezzo master (Mesos v1 scheduler, operator and agent APIs)."

FLAGS = FlagSet([
    Flag("ip", "0.0.0.0", "IP address to listen on"),
    Flag("port", "5050", "Port to listen on (0 picks a free port)", INT, minimum=0),
    Flag("hostname", None,
         "Hostname advertised to frameworks and agents (default: the host name)"),
    Flag("advertise_ip", None, "IP address advertised (redirects, ZooKeeper)"),
    Flag("advertise_port", None, "Port advertised", INT, minimum=0),
    Flag("work_dir", None, "Directory of the registry (sqlite); default ./mezzo-master-<port>"),
    Flag("registry", "sqlite", "Registry store: sqlite (under --work_dir), sqlite:<path>, "
         "in_memory; with --zk the default is ZooKeeper (<zk path>/log_replicas)"),
    Flag("zk", None,
         "ZooKeeper URL for leader election and the registry: zk://h1:2181,h2:2181/path"),
    Flag("zk_session_timeout", "10secs",
         "ZooKeeper session timeout (leader failure detection)", DURATION),
    Flag("quorum", None, "Accepted for Mesos compatibility (replicated-log quorum); "
         "ZooKeeper's own quorum replicates the registry here (see docs/ha.md)", INT, minimum=1),
    Flag("allocator", DEFAULT_ALLOCATOR, "Allocator name (hierarchical, random) or module:Class path"),
    Flag("allocation_interval", "1secs", "Period of batch allocations", DURATION),
    Flag("allocation_coalesce_window", "5ms",
         "Events that call for an allocation (agent or framework added, resources freed, "
         "revive) within this window make one allocation run; 0 runs at the next timer pass",
         DURATION),
    Flag("offer_timeout", None,
         "Rescind offers not answered within this duration (default: never)", DURATION),
    Flag("agent_ping_timeout", "15secs", "Time an agent has to answer a ping", DURATION),
    Flag("max_agent_ping_timeouts", "5", "Missed pings before an agent is unreachable", INT, minimum=1),
    Flag("agent_reregister_timeout", "10mins",
         "Time agents have to re-register after failover", DURATION),
    Flag("weights", None, "Role weights: role=weight,role=weight"),
    Flag("roles", None, "Comma-separated role whitelist (default: any role)"),
    Flag("min_allocatable_resources", DEFAULT_MIN_ALLOCATABLE, "Smallest offerable chunk"),
    Flag("fair_sharing_excluded_resource_names", None, "Resource names left out of DRF shares"),
    Flag("filter_gpu_resources", "true",
         "Offer agents with GPUs only to frameworks with the GPU_RESOURCES capability", BOOL),
    Flag("max_completed_frameworks", "50", "Completed frameworks kept in memory", INT, minimum=0),
    Flag("max_completed_tasks_per_framework", "1000",
         "Completed tasks kept per framework", INT, minimum=0),
    Flag("forked_documents", "auto",
         "Make big /master/state and GET_STATE answers in a forked copy of the master, off its "
         "event loop: auto (when the master may run on more than one CPU and the load average "
         "leaves one free), always, never", parse_forked_documents),
    Flag("max_operator_event_stream_subscribers", "1000",
         "Operator event stream subscribers; past it the oldest stream is closed", INT, minimum=1),
    Flag("root_submissions", "true", "Allow frameworks to run tasks as root", BOOL),
    Flag("port_file", None, "Write the bound port to this file once listening (for tests)"),
    Flag("logging_level", "INFO", "Log messages at or above this level: INFO, WARNING, ERROR "
         "(or DEBUG)", LOGGING_LEVEL),
    Flag("log_dir", None,
         "Also write the log to <log_dir>/mezzo-master.INFO (served as /master/log)"),
    *AUTH_FLAGS,
    *TLS_FLAGS,
])
