#ifndef PGBRIDGE_CRABBITMQ_SHIM_H
#define PGBRIDGE_CRABBITMQ_SHIM_H
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

/* amqp_login is variadic (its SASL arguments), which Swift cannot call. */
static inline amqp_rpc_reply_t pgbridge_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                         int frame_max, int heartbeat, const char *user,
                                                         const char *password) {
    return amqp_login(state, vhost, 0, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/* Method ids are cast macros, which Swift does not import. */
static const amqp_method_number_t pgbridge_amqp_basic_ack = AMQP_BASIC_ACK_METHOD;
static const amqp_method_number_t pgbridge_amqp_basic_nack = AMQP_BASIC_NACK_METHOD;
static const amqp_method_number_t pgbridge_amqp_basic_return = AMQP_BASIC_RETURN_METHOD;
static const amqp_method_number_t pgbridge_amqp_channel_close = AMQP_CHANNEL_CLOSE_METHOD;
static const amqp_method_number_t pgbridge_amqp_channel_close_ok = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const amqp_method_number_t pgbridge_amqp_connection_close = AMQP_CONNECTION_CLOSE_METHOD;
static const amqp_method_number_t pgbridge_amqp_connection_close_ok = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const amqp_method_number_t pgbridge_amqp_basic_get_ok = AMQP_BASIC_GET_OK_METHOD;
static const amqp_method_number_t pgbridge_amqp_basic_cancel = AMQP_BASIC_CANCEL_METHOD;
static const amqp_flags_t pgbridge_amqp_headers_flag = AMQP_BASIC_HEADERS_FLAG;
static const amqp_flags_t pgbridge_amqp_message_id_flag = AMQP_BASIC_MESSAGE_ID_FLAG;
static const amqp_flags_t pgbridge_amqp_publish_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG
                                                        | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG
                                                        | AMQP_BASIC_APP_ID_FLAG;
#endif
