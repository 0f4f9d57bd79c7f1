/** The package's version (package.json's; a test keeps them equal), for files the engine writes. */
export const VERSION = '0.1.0';
