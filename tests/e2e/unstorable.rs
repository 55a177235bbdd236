//! Values no database can hold (issue 9, point 10): a NUL character in message content or in a
//! usage row is refused as bad input naming the field, before it reaches a write batch.
