//! `fixci logs` tests.
