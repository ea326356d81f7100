/* `xsgw validate [--policy FILE] [--lua-dir DIR] [--json] [DOMAIN | --sip]`:
 * the command as main.c runs it. */
#ifndef XS_VALIDATE_COMMAND_H
#define XS_VALIDATE_COMMAND_H

/* argv[0] is "validate". Returns the exit status (XS_VALIDATE_PASS, _FAIL,
 * _USAGE). The report goes to stdout, usage errors to stderr. */
int xs_validate_command(int argc, char **argv, const char *default_policy,
                        const char *default_lua_dir);

#endif
