"""Key material, the encrypted key store, prekey rotation and the signed authority directory."""
