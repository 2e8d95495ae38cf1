//! TODO(helper): compare
