-- A message's events are found through the unique (message_id, dedupe) index: the second index
-- on message_id only cost a write per event.
DROP INDEX message_events_message;
