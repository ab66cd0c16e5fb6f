"""Framework SDK: an asyncio client of the v1 scheduler API, a callback Scheduler, a thread driver."""
