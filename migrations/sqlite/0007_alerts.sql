-- Account-level Twilio problems (20003 and the like) raise one alert per code and hour, however
-- many messages hit them: the row remembers when each code last raised one.
CREATE TABLE alerts (
    code      BIGINT PRIMARY KEY,
    raised_at BIGINT NOT NULL
);
