-- Lists filtered by recipient (Twilio's `To`), newest first.
CREATE INDEX messages_recipient ON messages (to_hash, id);
