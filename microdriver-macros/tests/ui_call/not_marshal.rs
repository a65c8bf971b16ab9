use microdriver_rt::{upcall, UpcallError};

struct NotMarshal {
    _x: u32,
}

#[derive(Debug, microdriver_rt::Marshal)]
struct Error;

impl From<UpcallError> for Error {
    fn from(_: UpcallError) -> Self {
        Error
    }
}

#[upcall]
fn configure(id: u32, settings: &NotMarshal) -> Result<(), Error> {
    let _ = (id, settings);
    Ok(())
}

fn main() {}
