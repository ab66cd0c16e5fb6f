"""The agent: runs executors in containers and delivers status updates reliably."""
