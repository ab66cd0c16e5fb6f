"""Mesos v1 wire types (scheduler, executor, operator), master<->agent messages, the JSON codec and RecordIO."""
