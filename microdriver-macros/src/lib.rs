//! Procedural macros for microdriver.
//!
//! Drivers use these through `microdriver-rt`, which re-exports them; the generated code
//! names the runtime by absolute paths (`::microdriver_rt::marshal::...`).
//!
//! # `#[derive(Marshal)]`
//! Makes a struct or enum able to cross the split between a driver's kernel half and its
//! user half. Fields cross in declaration order; enum variants cross as their index (an
//! unsigned LEB128 integer) followed by their fields. Field attributes say how fields
//! without a self-evident extent cross:
//!
//! - `#[marshal(skip)]`: the field never crosses. Decoding gives it `Default::default()`;
//!   `decode_into` (how `&mut` arguments and combolock contents come back) keeps the
//!   receiver's own value, however deeply the field is nested.
//! - `#[marshal(opaque)]`: the field crosses as a 64-bit identity (its type implements
//!   `Opaque`) and is never dereferenced: device memory, DMA handles, user pointers.
//! - `#[marshal(len = EXPR)]` (struct fields only): the field is a raw pointer
//!   (`*mut T`, `*const T`, `Option<NonNull<T>>`), a `Vec<T>` or a `Box<[T]>` holding
//!   `EXPR` elements. `EXPR` may use `self` (`self.count * 2`, `self.ring_len()`) or name a
//!   sibling field directly (`count`).
//!
//! The container attribute `#[marshal(bound = "T: Marshal + Clone")]` replaces the
//! `T: Marshal` bound the derive otherwise adds for every type parameter.
//!
//! A struct whose fields are all plain (no attribute) also gets a `LAYOUT` that lets
//! sequences of it cross as raw memory when its fields tile it without padding (e.g. a
//! `#[repr(C)]` descriptor of integers). `#[repr(packed)]` structs are supported: their
//! fields are read by copy, never borrowed.
//!
//! Raw pointers without `len` or `opaque`, references, unions, and conflicting or unknown
//! attributes are compile errors that name the field and the annotation that fixes it.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `microdriver_rt::marshal::Marshal`; see the [crate documentation](crate).
///
/// ```
/// use microdriver_rt::marshal::{from_bytes, to_bytes};
/// use microdriver_rt::Marshal;
///
/// #[derive(Debug, Default, PartialEq, Marshal)]
/// struct Ring {
///     size: u32,
///     #[marshal(len = size)]
///     lens: Vec<u16>,
///     #[marshal(skip)]
///     buffers: Vec<Vec<u8>>,
/// }
///
/// let ring = Ring { size: 2, lens: vec![60, 1514], buffers: vec![vec![0; 2048]; 2] };
/// let copy: Ring = from_bytes(&to_bytes(&ring)?)?;
/// assert_eq!((copy.size, copy.lens), (2, vec![60, 1514]));
/// assert!(copy.buffers.is_empty(), "skipped fields do not cross");
/// # Ok::<(), microdriver_rt::MarshalError>(())
/// ```
#[proc_macro_derive(Marshal, attributes(marshal))]
pub fn derive_marshal(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

mod call;

/// Runs the function's body in the user half; kernel-half callers get a stub with the same
/// signature that makes an upcall.
///
/// Arguments may be owned values, `&T`, `&mut T` (carried back after the call), `&[T]`,
/// `&mut [T]` and `&str`, where every `T` implements `Marshal`. A function that returns a
/// value must return `Result<T, E>` with `E: From<CallError>` (a dead user half becomes
/// an `Err`); one that returns nothing logs failures. `#[upcall(deferred)]` functions take
/// only owned `Send + 'static` arguments, return nothing, and return to kernel-half
/// callers at once (the upcall is made on a background thread).
///
/// Which half the calling thread is in is decided at run time: with no kernel endpoint
/// installed (monolithic mode) and in the user half, the stub calls the body directly.
///
/// ```
/// use microdriver_rt::{upcall, CallError, Marshal};
///
/// #[derive(Debug, PartialEq, Marshal)]
/// struct Error(String);
/// impl From<CallError> for Error {
///     fn from(e: CallError) -> Self { Error(e.to_string()) }
/// }
///
/// /// Configuration: runs in the user half once the driver is split.
/// #[upcall]
/// fn checked_mtu(mtu: u32) -> Result<u32, Error> {
///     if (68..=9000).contains(&mtu) { Ok(mtu) } else { Err(Error(format!("MTU {mtu}"))) }
/// }
///
/// fn main() {
///     microdriver_rt::run_user_half_if_requested();
///     assert_eq!(checked_mtu(1500), Ok(1500)); // monolithic: a direct call
///     let _split = microdriver_rt::start(Default::default()).expect("start");
///     assert_eq!(checked_mtu(1500), Ok(1500)); // an upcall to the user half
///     assert!(checked_mtu(10).is_err());       // its error crosses back as it is
/// }
/// ```
#[proc_macro_attribute]
pub fn upcall(args: TokenStream, item: TokenStream) -> TokenStream {
    call::expand(call::Side::Upcall, args.into(), item.into()).into()
}

/// Keeps the function's body in the kernel half; user-half callers get a stub with the
/// same signature that makes a downcall (nested in the upcall being served, if any).
///
/// Arguments follow the rules of [`macro@upcall`]. A `Result<T, E>` return maps call
/// failures into `E` (`E: From<CallError>`); any other return type makes the user half
/// exit if the kernel half cannot be reached.
///
/// ```
/// use microdriver_rt::{critical, current_half, Half};
///
/// /// The hot path: a direct call in the kernel half (and monolithic).
/// #[critical]
/// fn checksum(frame: &[u8]) -> u16 {
///     frame.iter().fold(0u16, |sum, b| sum.wrapping_add(u16::from(*b)))
/// }
///
/// assert_eq!(current_half(), Half::Monolithic);
/// assert_eq!(checksum(&[1, 2, 3]), 6);
/// ```
#[proc_macro_attribute]
pub fn critical(args: TokenStream, item: TokenStream) -> TokenStream {
    call::expand(call::Side::Critical, args.into(), item.into()).into()
}
