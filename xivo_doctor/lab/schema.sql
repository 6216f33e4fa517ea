-- The lab's per-node database `asterisk_<N>` (docs/lab.md "Database"): the XiVO 16.13+ columns of the
-- tables the interconnection uses (XIVO-FACTS §2, §6.1). Applied as the role `asterisk` by
-- xivo_doctor/lab/postgres.py:create_node_database, which then alters it for an older release.
CREATE TABLE infos (uuid varchar(38) NOT NULL PRIMARY KEY);
CREATE TABLE accesswebservice (id serial PRIMARY KEY, name varchar(64) NOT NULL UNIQUE, login varchar(64),
  passwd varchar(64), host varchar(255), acl varchar[] NOT NULL DEFAULT '{}', disable integer NOT NULL DEFAULT 0,
  description text NOT NULL DEFAULT '');
CREATE TABLE directories (id serial PRIMARY KEY, uri varchar(255), dirtype varchar(20) NOT NULL, name varchar(255),
  description text NOT NULL DEFAULT '', xivo_username text, xivo_password text,
  xivo_verify_certificate boolean NOT NULL DEFAULT false, xivo_custom_ca_path text, dird_tenant text,
  dird_phonebook text, ldapfilter_id integer);
CREATE TABLE ctidirectories (id serial PRIMARY KEY, name varchar(255), delimiter varchar(20),
  match_direct text NOT NULL, match_reverse text NOT NULL, description varchar(255), deletable integer,
  directory_id integer REFERENCES directories(id) ON DELETE CASCADE);
CREATE TABLE ctidirectoryfields (dir_id integer NOT NULL, fieldname varchar(255) NOT NULL, value varchar(255),
  PRIMARY KEY (dir_id, fieldname));
CREATE TABLE cticontexts (id serial PRIMARY KEY, name varchar(50), directories text NOT NULL, display text NOT NULL,
  description text NOT NULL, deletable integer NOT NULL);
-- the displays a cticontext names (confgend's profiles are cticontexts inner-joined to them; xivo-dao cti_displays.py)
CREATE TABLE ctidisplays (id serial PRIMARY KEY, name varchar(50), data text NOT NULL, deletable integer,
  description text);
-- what xivo-confd's /1.1/users?view=directory and json.php's phonebook read (subset of XiVO's columns)
CREATE TABLE userfeatures (id serial PRIMARY KEY, uuid varchar(38) NOT NULL, firstname varchar(128) NOT NULL DEFAULT '',
  lastname varchar(128) NOT NULL DEFAULT '', email varchar(128), mobilephonenumber varchar(128) NOT NULL DEFAULT '',
  userfield varchar(128), description text NOT NULL DEFAULT '', exten varchar(40), context varchar(39) DEFAULT 'default');
CREATE TABLE phonebook (id serial PRIMARY KEY, title varchar(128) NOT NULL DEFAULT '', firstname varchar(128) NOT NULL DEFAULT '',
  lastname varchar(128) NOT NULL DEFAULT '', displayname varchar(64) NOT NULL DEFAULT '', society varchar(128) NOT NULL DEFAULT '',
  email varchar(128) NOT NULL DEFAULT '', url varchar(255) NOT NULL DEFAULT '', image varchar(255) NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '');
CREATE TABLE phonebooknumber (id serial PRIMARY KEY, phonebookid integer NOT NULL REFERENCES phonebook(id) ON DELETE CASCADE,
  number varchar(40) NOT NULL DEFAULT '', type varchar(10) NOT NULL);  -- type: home office mobile fax other
CREATE TABLE phonebookaddress (id serial PRIMARY KEY, phonebookid integer NOT NULL REFERENCES phonebook(id) ON DELETE CASCADE,
  address1 varchar(30) NOT NULL DEFAULT '', address2 varchar(30) NOT NULL DEFAULT '', city varchar(128) NOT NULL DEFAULT '',
  state varchar(128) NOT NULL DEFAULT '', zipcode varchar(16) NOT NULL DEFAULT '', country varchar(3) NOT NULL DEFAULT '',
  type varchar(6) NOT NULL);  -- type: home office other
-- what xivo-confgend reads for xivo-dird besides the directories (research-directory-lookup.md §1.2): the
-- CTI server's main settings (16.13's columns, xivo-dao alchemy/ctimain.py@xivo-16.13; `context_separation`
-- picks the generators from 15.20) and the reverse lookup's sources (a JSON list, cti_reverse_dao.py)
CREATE TABLE ctimain (id serial PRIMARY KEY, ctis_active integer NOT NULL DEFAULT 1, tlscertfile varchar(128),
  tlsprivkeyfile varchar(128), context_separation integer, live_reload_conf integer);
CREATE TABLE ctireversedirectories (id serial PRIMARY KEY, directories text NOT NULL);
