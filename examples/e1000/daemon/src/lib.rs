//! e1000d, the e1000 microdriver daemon, and the control protocol e1000ctl speaks.
