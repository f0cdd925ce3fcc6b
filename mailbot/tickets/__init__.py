"""Everything that changes a ticket: open it with its deadlines, attach a message, hold and end
a hold, declare it incomplete and complete, reclassify, merge, refer, acknowledge, and what a
failed delivery or a bounce does to it. Each writer runs on the caller's connection, inside the
transaction of whatever decided it; `staff/` and `intake/` decide, and call these."""
