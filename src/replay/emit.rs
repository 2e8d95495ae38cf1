//! TODO(helper): emit
