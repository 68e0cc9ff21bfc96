<?php
// The store's database, from the environment; cookie login every time, never a stored password.
$cfg['Servers'][1]['host'] = getenv('PMA_HOST') ?: 'db';
$cfg['Servers'][1]['auth_type'] = 'cookie';
$cfg['Servers'][1]['AllowNoPassword'] = false;
$cfg['Servers'][1]['AllowRoot'] = false;
$cfg['blowfish_secret'] = trim(file_get_contents('/etc/phpmyadmin/blowfish_secret'));
$cfg['VersionCheck'] = false;
$cfg['SendErrorReports'] = 'never';
