//! The UIO backend of the e1000 microdriver (being built; see issue 8).
