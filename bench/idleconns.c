/* idleconns.c: open N mutual-TLS connections to a server, complete the
 * handshake on each, and hold them idle for S seconds (to measure the
 * server's memory with many idle clients). Usage:
 *   idleconns HOST PORT N SECONDS CACERT CERT KEY */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

int
main(int argc, char *argv[])
{
	struct sockaddr_in sin;
	SSL_CTX *ctx;
	SSL **ssl;
	int n, held = 0;

	if (argc != 8) {
		fprintf(stderr, "usage: idleconns HOST PORT N SECONDS CACERT CERT KEY\n");
		return 2;
	}
	n = atoi(argv[3]);
	if ((ssl = calloc((size_t)n, sizeof(*ssl))) == NULL ||
	    (ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    !SSL_CTX_load_verify_locations(ctx, argv[5], NULL) ||
	    !SSL_CTX_use_certificate_file(ctx, argv[6], SSL_FILETYPE_PEM) ||
	    !SSL_CTX_use_PrivateKey_file(ctx, argv[7], SSL_FILETYPE_PEM)) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &sin.sin_addr);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd == -1 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
			perror("connect");
			break;
		}
		ssl[i] = SSL_new(ctx);
		SSL_set_fd(ssl[i], fd);
		if (SSL_connect(ssl[i]) != 1) {
			ERR_print_errors_fp(stderr);
			break;
		}
		held++;
	}
	printf("held=%d\n", held);
	fflush(stdout);
	sleep((unsigned int)atoi(argv[4]));
	return held == n ? 0 : 1;
}
