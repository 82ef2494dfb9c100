//! Share groups (KIP-932): queue-like consumption in which members of one group share the
//! records of a partition, each record handed to one member at a time and acknowledged one by
//! one.

pub mod partition;
