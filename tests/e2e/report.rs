//! Report content (issue 9, point 5): the usage table always present, each "why not" worded as
//! its true reason, user strings escaped in the markdown.
