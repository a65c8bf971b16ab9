use microdriver_rt::{upcall, CallError};

struct NotMarshal {
    _x: u32,
}

#[derive(Debug, microdriver_rt::Marshal)]
struct Error;

impl From<CallError> for Error {
    fn from(_: CallError) -> Self {
        Error
    }
}

#[upcall]
fn configure(id: u32, settings: &NotMarshal) -> Result<(), Error> {
    let _ = (id, settings);
    Ok(())
}

fn main() {}
