//! `fixci stress` tests.
