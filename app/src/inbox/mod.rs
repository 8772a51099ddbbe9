//! The inbox for dispatchers: replies that are not keywords, each threaded with the last message
//! smsdesk sent to that number, read or unread.

pub mod api;
pub mod page;
