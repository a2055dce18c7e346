//! `cerfs samba-config`: the smb.conf share stanza of a cerfs share, for admins who run
//! their own Samba over a `cerfs mount` (clustered with CTDB, or not).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `cerfs samba-config`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the smb.conf share stanza of a cerfs share, for admins who run their own Samba
over a `cerfs mount`. The [global] settings it relies on are listed in its first lines.
With --cluster, the stanza of one head of a CTDB cluster serving a PostgreSQL store
(docs/scale-out.md, Clustered Samba): every head gets the same stanza.

Examples:
  cerfs samba-config --share cer --path /srv/cer >> /etc/samba/smb.conf
  cerfs samba-config --cluster --path /srv/cer >> /etc/samba/smb.conf")]
pub struct SambaConfigArgs {
    /// Share name.
    #[arg(long, value_name = "NAME", default_value = "cer")]
    pub share: String,

    /// The cerfs mountpoint to export.
    #[arg(long, value_name = "DIR", default_value = "/srv/cer")]
    pub path: PathBuf,

    /// Refuse clients without an account (guest ok = no).
    #[arg(long)]
    pub no_guest: bool,

    /// For a head of a CTDB cluster (clustering = yes; vfs_fileid so that every head
    /// reports the same file ids).
    #[arg(long)]
    pub cluster: bool,
}

/// Prints the share stanza.
pub fn print_samba_config(args: &SambaConfigArgs) -> Result<()> {
    let stanza = cerfs_samba::share_stanza(&args.share, &args.path, !args.no_guest, args.cluster)?;
    print!("{stanza}");
    Ok(())
}
