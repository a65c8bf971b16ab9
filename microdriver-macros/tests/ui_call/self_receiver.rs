use microdriver_rt::upcall;

#[derive(microdriver_rt::Marshal)]
struct Adapter {
    mtu: u32,
}

impl Adapter {
    #[upcall]
    fn set_mtu(&mut self, mtu: u32) {
        self.mtu = mtu;
    }
}

fn main() {}
