//! The e1000 microdriver (placeholder: the driver lands with the e1000 issue).
