//! TODO(helper): report
