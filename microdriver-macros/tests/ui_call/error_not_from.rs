use microdriver_rt::upcall;

#[derive(Debug, microdriver_rt::Marshal)]
enum EepromError {
    Checksum,
}

#[upcall]
fn read_eeprom(word: u16) -> Result<u16, EepromError> {
    if word == 0 {
        return Err(EepromError::Checksum);
    }
    Ok(word)
}

fn main() {}
